"""End-of-turn metrics on hand-built truths (the right answers worked out by hand in each test),
the truth formats that carry turns (JSON, CSV, Praat TextGrid, RTTM), and the quota scheduler
driven by a small manual clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from voicelive_nb.errors import ConfigError
from voicelive_nb.lab.quota import QuotaLimiter, QuotaLimits, estimate_tokens, rate_limit_pause_s
from voicelive_nb.lab.truth import Truth, find_truth, load_truth, parse_truth, save_truth
from voicelive_nb.lab.turns import (
    Pause,
    Stop,
    budget_figures,
    label_pauses,
    pareto_frontier,
    score_stops,
    silence_baseline,
)

# three turns: A speaks 0-1000, holds 400 ms, 1400-2000; B 4000-5000; A again 5300-6000 (a quick reply)
SPANS = [(0.0, 1000.0), (1400.0, 2000.0), (4000.0, 5000.0), (5300.0, 6000.0), (6500.0, 7000.0)]
TURNS = ["A", "A", "B", "A", "A"]


def test_pauses_are_labelled_by_turn_id_and_by_the_gap_rule_without_ids() -> None:
    with_ids = label_pauses(SPANS, TURNS)
    assert [p.kind for p in with_ids] == ["hold", "eot", "eot", "hold", "eot"]
    assert [p.duration_ms for p in with_ids[:4]] == [400.0, 2000.0, 300.0, 500.0]
    assert with_ids[-1].end_ms is None and with_ids[-1].duration_ms == float("inf")
    # without ids: a gap of at least eot_gap_ms ends the turn (the 300 ms reply becomes a hold)
    gaps = label_pauses(SPANS, None, eot_gap_ms=1000)
    assert [p.kind for p in gaps] == ["hold", "eot", "hold", "hold", "eot"]
    assert [p.kind for p in label_pauses(SPANS, None, eot_gap_ms=300)] == ["eot", "eot", "eot", "eot", "eot"]
    with pytest.raises(ValueError, match="one turn id per span"):
        label_pauses(SPANS, ["A"])


def test_stops_are_scored_as_false_cut_offs_latencies_and_stops_in_speech() -> None:
    pauses = label_pauses(SPANS, TURNS)
    stops = [
        Stop(1300.0),  # in the 400 ms hold: a false cut-off
        Stop(1450.0),  # 50 ms after the next onset: still decided in that hold (tolerance 100), same cut-off
        Stop(2600.0, response_latency_ms=700.0),  # end of A's turn: latency 600, to audio 1300
        Stop(2900.0),  # a second stop in the same pause: only the first counts
        Stop(4500.0),  # in the middle of B's speech
        Stop(7450.0),  # after the last span: latency 450
    ]
    score = score_stops(pauses, stops)
    s = score.summary()
    # holds: 1000-1400 (cut off) and 6000-6500 (not): 1 of 2
    assert (s["holds"], s["false_cutoffs"], s["false_cutoff_rate"]) == (2, 1, 0.5)
    # ends of turn: 2000 (600 ms), 5000 (no stop before 5300+100: missed), 7000 (450 ms)
    assert (s["eots"], s["eots_detected"], s["eots_missed"]) == (3, 2, 1)
    assert score.latencies_ms == [600.0, 450.0]
    assert s["latency_ms_p50"] == 525.0 and s["latency_ms_p90"] == 585.0  # linear between ranks
    assert score.response_latencies_ms == [1300.0]
    assert s["cutoffs_in_speech"] == 1
    # the tolerance matters: with none, the stop 50 ms into the next span is a stop in speech
    strict = score_stops(pauses, stops, tolerance_ms=0).summary()
    assert strict["cutoffs_in_speech"] == 2 and strict["false_cutoffs"] == 1


def test_wall_latency_replaces_the_audio_timeline_when_measured() -> None:
    pauses = [Pause(0, 1000.0, None, True)]
    # mapped speech end 980 (20 ms early), wall 530 ms from sending it to speech_stopped → 510
    score = score_stops(pauses, [Stop(1500.0, speech_end_ms=980.0, stop_latency_ms=530.0)])
    assert score.latencies_ms == [510.0]


def test_budgets_frontier_and_silence_baseline_by_hand() -> None:
    points = [
        {"latency_ms_p50": 250.0, "false_cutoff_rate": 0.6},
        {"latency_ms_p50": 450.0, "false_cutoff_rate": 0.2},
        {"latency_ms_p50": 500.0, "false_cutoff_rate": 0.3},  # beaten by the one above
        {"latency_ms_p50": 800.0, "false_cutoff_rate": 0.04},
        {"latency_ms_p50": 1200.0, "false_cutoff_rate": 0.0},
        {"latency_ms_p50": None, "false_cutoff_rate": 0.0},  # no end of turn detected: left out
    ]
    assert pareto_frontier(points) == [0, 1, 3, 4]
    figs = budget_figures(points)
    assert figs == {
        "cutoff_at_300ms": 0.6,
        "cutoff_at_600ms": 0.2,
        "cutoff_at_1000ms": 0.04,
        "latency_at_5pct": 800.0,
        "latency_at_10pct": 800.0,
    }
    # silence only: holds of 200, 350, 500, 700, 900, 1100, 1300, 1500, 2000, 2500 ms (10)
    holds = [200, 350, 500, 700, 900, 1100, 1300, 1500, 2000, 2500]
    pauses = [Pause(i, 0.0, float(d), False) for i, d in enumerate(holds)] + [Pause(99, 0.0, None, True)]
    base = silence_baseline(pauses)
    bf = base.figures()
    assert bf["cutoff_at_300ms"] == 0.9  # all but the 200 ms hold are longer than 300
    assert bf["cutoff_at_600ms"] == 0.7
    assert bf["cutoff_at_1000ms"] == 0.5
    assert bf["latency_at_5pct"] == 2500.0  # 0 cut-offs allowed: wait longer than the longest hold
    assert bf["latency_at_10pct"] == 2000.0  # one allowed: only the 2500 ms hold is cut off
    point = base.point(1000)
    assert (
        point["false_cutoff_rate"] == 0.5
        and point["latency_ms_p50"] == 1000.0
        and point["eots_detected"] == 1
    )


def test_truth_turn_ids_from_json_and_csv_round_trip(tmp_path: Path) -> None:
    t = parse_truth('{"speech_s": [[0, 1], [1.4, 2], [4, 5]], "turns": ["A", "A", "B"]}')
    assert t.turns == ("A", "A", "B")
    t2 = parse_truth('[[4, 5, "B"], [0, 1, "A"], [1.4, 2, "A"]]')  # triples, out of order
    assert t2.spans_s == t.spans_s and t2.turns == t.turns
    csv_text = "start,end,speaker_turn\n0,1,A\n1.4,2,A\n4,5,B\n"
    assert parse_truth(csv_text, "csv").turns == ("A", "A", "B")
    for suffix in (".json", ".csv"):
        path = save_truth(tmp_path / f"t{suffix}", t)
        back = load_truth(path)
        assert back.turns == ("A", "A", "B") and back.spans_s == t.spans_s
    # overlapping spans merge and keep the first one's id
    merged = Truth.from_spans([(0, 1), (0.5, 2), (3, 4)], turns=["x", "y", "z"])
    assert merged.spans_s == ((0.0, 2.0), (3.0, 4.0)) and merged.turns == ("x", "z")
    with pytest.raises(ValueError, match="one turn id per span"):
        parse_truth('{"speech_s": [[0, 1]], "turns": ["A", "B"]}')


TEXTGRID_LONG = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 6
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 6
        intervals: size = 5
        intervals [1]:
            xmin = 0
            xmax = 0.5
            text = ""
        intervals [2]:
            xmin = 0.5
            xmax = 1.5
            text = "say ""hi"" now"
        intervals [3]:
            xmin = 1.5
            xmax = 1.9
            text = "sil"
        intervals [4]:
            xmin = 1.9
            xmax = 3
            text = "how are you"
        intervals [5]:
            xmin = 3
            xmax = 6
            text = ""
    item [2]:
        class = "IntervalTier"
        name = "turns"
        xmin = 0
        xmax = 6
        intervals: size = 2
        intervals [1]:
            xmin = 0
            xmax = 1.7
            text = "user-1"
        intervals [2]:
            xmin = 1.7
            xmax = 6
            text = "user-2"
"""

TEXTGRID_SHORT = """File type = "ooTextFile"
Object class = "TextGrid"

0
4
<exists>
2
"TextTier"
"events"
0
4
1
2.2
"click"
"IntervalTier"
"speech"
0
4
3
0
1
"speech"
1
2
""
2
4
"speech"
"""


def test_praat_textgrid_long_and_short_formats(tmp_path: Path) -> None:
    long = parse_truth(TEXTGRID_LONG)  # sniffed
    assert long.spans_s == ((0.5, 1.5), (1.9, 3.0))
    assert long.turns == ("user-1", "user-2")  # each span gets the turn interval at its midpoint
    short = parse_truth(TEXTGRID_SHORT, "textgrid")  # a point tier first, then the speech tier
    assert short.spans_s == ((0.0, 1.0), (2.0, 4.0)) and short.turns is None
    path = tmp_path / "clip.TextGrid"
    path.write_text(TEXTGRID_LONG, encoding="utf-8")
    assert load_truth(path).turns == ("user-1", "user-2")
    (tmp_path / "clip.wav").write_bytes(b"")
    found = find_truth(tmp_path / "clip.wav")
    assert found is not None and found.spans_s == long.spans_s
    with pytest.raises(ValueError, match="truncated or malformed"):
        parse_truth(TEXTGRID_LONG[:400], "textgrid")


def test_rttm_speakers_are_turn_ids(tmp_path: Path) -> None:
    text = (
        ";; a comment\n"
        "SPKR-INFO meeting 1 <NA> <NA> <NA> unknown alice <NA> <NA>\n"
        "SPEAKER meeting 1 0.50 1.00 <NA> <NA> alice <NA> <NA>\n"
        "SPEAKER meeting 1 1.90 0.60 <NA> <NA> alice <NA> <NA>\n"
        "SPEAKER meeting 1 3.00 1.25 <NA> <NA> bob <NA> <NA>\n"
    )
    t = parse_truth(text)
    assert t.spans_s == ((0.5, 1.5), (1.9, 2.5), (3.0, 4.25))
    assert t.turns == ("alice", "alice", "bob")
    assert [p.kind for p in label_pauses(t.spans_ms, t.turns)] == ["hold", "eot", "eot"]
    path = tmp_path / "x.rttm"
    path.write_text(text, encoding="utf-8")
    assert load_truth(path).turns == t.turns
    with pytest.raises(ValueError, match="line 2: expected SPEAKER"):
        parse_truth("SPEAKER a 1 0 1 <NA> <NA> x\nSPEAKER a 1 zero\n", "rttm")


# ----------------------------------------------------------------------------------- quota


class ManualClock:
    """A clock that moves only when something sleeps on it (a real small class, not a mock)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_quota_holds_five_connections_per_two_second_window() -> None:
    clock = ManualClock()
    limiter = QuotaLimiter(
        QuotaLimits(connections=5, tokens=10_000, window_s=2.0), clock=clock, sleep=clock.sleep
    )
    starts: list[float] = []
    waits: list[tuple[float, str]] = []
    limiter.on_wait = lambda delay, why: waits.append((delay, why))

    async def worker(n: int) -> None:
        for _ in range(n):
            await limiter.acquire(10)
            starts.append(clock.now)

    async def main() -> None:
        await asyncio.gather(*(worker(4) for _ in range(3)))  # 12 connections, 3 at a time

    asyncio.run(main())
    assert len(starts) == 12
    for t in starts:  # every window of 2 s holds at most 5 starts
        assert sum(1 for u in starts if t <= u < t + 2.0) <= 5
    assert starts == [0.0] * 5 + [2.0] * 5 + [4.0] * 2
    assert waits and all(why == "connections/min" for _, why in waits)
    assert limiter.waited_s > 0


def test_quota_token_budget_and_back_off() -> None:
    clock = ManualClock()
    limiter = QuotaLimiter(
        QuotaLimits(connections=100, tokens=1000, window_s=10.0), clock=clock, sleep=clock.sleep
    )
    starts: list[float] = []

    async def main() -> None:
        for _ in range(3):
            await limiter.acquire(400)
            starts.append(clock.now)
            clock.now += 1.0
        limiter.pause(5.0)  # a 429: everyone waits 5 s from now
        await limiter.acquire(1)
        starts.append(clock.now)

    asyncio.run(main())
    # 400 + 400 fit in 1000, the third waits until the first leaves the window (t=10)
    assert starts[:3] == [0.0, 1.0, 10.0]
    assert starts[3] == 16.0  # paused at 11 for 5 s
    assert limiter.backoffs == 1
    with pytest.raises(ConfigError, match="connections_per_min"):
        QuotaLimits(connections=0)


def test_rate_limits_updated_events_and_token_estimate() -> None:
    events = [
        (0.1, {"type": "session.created"}),
        (
            0.2,
            {
                "type": "rate_limits.updated",
                "rate_limits": [{"name": "tokens", "remaining": 50, "reset_seconds": 9}],
            },
        ),
        (
            0.3,
            {
                "type": "rate_limits.updated",
                "rate_limits": [{"name": "requests", "remaining": 0, "reset_seconds": 2.5}],
            },
        ),
        (0.4, {"type": "rate_limits.updated", "rate_limits": "garbled"}),  # tolerated
    ]
    assert rate_limit_pause_s(events) == 2.5
    assert rate_limit_pause_s(events[:2]) is None
    assert estimate_tokens(60.0) == 600 and estimate_tokens(10.0, responses=2) == 900
