"""The pure VAD scoring core: boundary mapping, matching, error statistics, mistakes, ranking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicelive_nb.analysis.vad_scoring import (
    SUMMARY_FIELDS,
    BoundaryMapping,
    DetectedTurn,
    VadScore,
    normalize_spans,
    percentile,
    rank_key,
    score_turns,
)


def turn(start: float, end: float, *, clamped: bool = False, open_: bool = False) -> DetectedTurn:
    """A turn whose mapped span is [start, end] (raw values equal to the mapped ones)."""
    return DetectedTurn(start, None if open_ else end, start, end, clamped, open_)


TRUTH = [(1000.0, 2000.0), (3000.0, 4000.0), (5000.0, 6000.0)]


# --- boundary mapping ---------------------------------------------------------------------------


def test_mapping_removes_padding_and_silence_window() -> None:
    m = BoundaryMapping(prefix_padding_ms=300, silence_duration_ms=500)
    t = m.map_turn(700, 2500, floor_ms=0)
    assert (t.speech_start_ms, t.speech_end_ms) == (1000, 2000)
    assert (t.audio_start_ms, t.audio_end_ms) == (700, 2500)
    assert not t.start_clamped and not t.open


def test_start_at_the_buffer_floor_is_clamped_and_kept_raw() -> None:
    m = BoundaryMapping(prefix_padding_ms=400, silence_duration_ms=500)
    first, second = m.map_turns([(1000, 2500), (2500, 4600)])
    assert not first.start_clamped
    assert second.start_clamped  # began at the previous audio_end_ms: onset unknown
    assert second.speech_start_ms == 2500
    assert second.speech_end_ms == 4100
    at_zero = m.map_turn(0, 900)
    assert at_zero.start_clamped and at_zero.speech_start_ms == 0


def test_open_turn_ends_at_the_end_of_the_audio_and_stop_without_start() -> None:
    m = BoundaryMapping(100, 200)
    t = m.map_turn(500, None, audio_total_ms=8000)
    assert t.open and t.speech_end_ms == 8000 and t.audio_end_ms is None
    orphan = m.map_turn(None, 3000, floor_ms=1000)
    assert orphan.start_clamped and orphan.speech_start_ms == 1000 and orphan.speech_end_ms == 2800


def test_mapped_end_never_precedes_the_start() -> None:
    t = BoundaryMapping(400, 500).map_turn(1000, 1200)
    assert t.speech_end_ms == t.speech_start_ms == 1400


# --- scoring --------------------------------------------------------------------------------------


def test_perfect_detection() -> None:
    s = score_turns(TRUTH, [turn(a, b) for a, b in TRUTH])
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)
    assert s.start_error_ms_median == 0 and s.end_error_ms_p90 == 0
    assert (s.false_starts, s.cut_offs, s.merged, s.missed) == (0, 0, 0, 0)
    assert s.false_alarm_ms == 0 and s.missed_speech_ms == 0


def test_errors_are_signed_medians_and_absolute_p90() -> None:
    shifts = [(-20, 40), (30, 60), (50, 100)]
    turns = [turn(a + ds, b + de) for (a, b), (ds, de) in zip(TRUTH, shifts, strict=True)]
    s = score_turns(TRUTH, turns)
    assert s.start_error_ms_median == 30
    assert s.end_error_ms_median == 60
    assert s.start_error_ms_p90 == pytest.approx(np.percentile([20, 30, 50], 90))
    assert s.end_error_ms_p90 == pytest.approx(np.percentile([40, 60, 100], 90))


def test_false_start_and_missed_utterance() -> None:
    turns = [turn(1000, 2000), turn(2300, 2700), turn(3000, 4000)]  # noise between; third utterance lost
    s = score_turns(TRUTH, turns)
    assert s.matched == 2 and s.false_starts == 1 and s.missed == 1
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3)
    assert s.false_alarm_ms == 400  # wholly outside the 150 ms collar around the utterances
    assert s.missed_speech_ms == 1000


def test_merged_utterances() -> None:
    s = score_turns(TRUTH, [turn(1000, 6000)])
    assert s.merged == 2 and s.matched == 1
    assert s.precision == 1.0 and s.recall == pytest.approx(1 / 3)
    assert s.false_alarm_ms == pytest.approx(2 * (1000 - 300))


def test_cut_off_turn_ends_inside_an_utterance() -> None:
    turns = [turn(1000, 1500), turn(1700, 2000), turn(3000, 4000), turn(5000, 6000)]
    s = score_turns(TRUTH, turns)
    assert s.cut_offs == 1 and s.merged == 0 and s.false_starts == 0
    assert s.matched == 3 and s.precision == pytest.approx(3 / 4)


def test_an_end_within_the_collar_is_not_a_cut_off() -> None:
    s = score_turns(TRUTH, [turn(1000, 1900), turn(3000, 4000), turn(5000, 6000)], collar_ms=150)
    assert s.cut_offs == 0 and s.end_error_ms_median == 0 and s.end_error_ms_p90 == pytest.approx(80)


def test_clamped_starts_and_open_ends_are_left_out_of_the_error_statistics() -> None:
    turns = [turn(900, 2100, clamped=True), turn(3010, 4020), turn(5030, 7000, open_=True)]
    s = score_turns(TRUTH, turns)
    assert s.matched == 3 and s.clamped_starts == 1
    assert s.start_errors_ms == (10, 30)
    assert s.end_errors_ms == (100, 20)


def test_small_overlaps_do_not_match() -> None:
    s = score_turns([(1000, 2000)], [turn(1900, 3000)], min_overlap=0.5)
    assert s.matched == 0 and s.false_starts == 0 and s.missed == 0
    assert score_turns([(1000, 2000)], [turn(1900, 3000)], min_overlap=0.05).matched == 1


def test_empty_cases() -> None:
    assert score_turns([], []).f1 == 1.0
    nothing_found = score_turns(TRUTH, [])
    assert (nothing_found.precision, nothing_found.recall, nothing_found.f1) == (0.0, 0.0, 0.0)
    only_noise = score_turns([], [turn(0, 500)])
    assert (only_noise.precision, only_noise.recall, only_noise.f1, only_noise.false_starts) == (
        0.0,
        0.0,
        0.0,
        1,
    )
    assert nothing_found.start_error_ms_median is None


def test_summary_has_every_field_and_combine_pools() -> None:
    a = score_turns(TRUTH, [turn(a + 10, b + 50) for a, b in TRUTH])
    b = score_turns(TRUTH[:2], [turn(1000, 4000)])
    assert list(a.summary()) == list(SUMMARY_FIELDS)
    both = VadScore.combine([a, b])
    assert (both.n_truth, both.n_turns, both.matched, both.merged) == (5, 4, 4, 1)
    assert both.precision == 1.0 and both.recall == pytest.approx(4 / 5)
    assert both.start_errors_ms == (10, 10, 10, 0)
    assert both.false_alarm_ms == a.false_alarm_ms + b.false_alarm_ms


def test_percentile_matches_numpy_linear() -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    for q in (0, 10, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_normalize_spans() -> None:
    assert normalize_spans([(3, 4), (1, 2), (1.5, 2.5)]) == [(1.0, 2.5), (3.0, 4.0)]
    with pytest.raises(ValueError, match="ends before it starts"):
        normalize_spans([(2, 1)])
    with pytest.raises(ValueError, match="finite"):
        normalize_spans([(0, float("nan"))])


def test_rank_key_prefers_f1_then_fewer_mistakes_then_smaller_errors() -> None:
    Row = dict[str, float | int | None]
    good: Row = {"f1": 1.0, "false_starts": 0, "cut_offs": 0, "merged": 0, "end_error_ms_median": 60}
    faster: Row = {**good, "end_error_ms_median": -20}
    sloppy: Row = {**good, "merged": 1}
    worse: Row = {**good, "f1": 0.8}
    unknown: Row = {"f1": None}
    ordered = sorted([worse, unknown, sloppy, good, faster], key=lambda s: rank_key(s))
    assert ordered == [faster, good, sloppy, worse, unknown]
    by_end = sorted([good, faster], key=lambda s: rank_key(s, "end_error_ms_median"))
    assert by_end[0] is faster


def test_invalid_options() -> None:
    with pytest.raises(ValueError):
        score_turns(TRUTH, [], min_overlap=0)
    with pytest.raises(ValueError):
        score_turns(TRUTH, [], collar_ms=-1)


# --- properties -----------------------------------------------------------------------------------


@st.composite
def utterances(draw: st.DrawFn) -> list[tuple[float, float]]:
    """Disjoint utterances with gaps long enough that padding + silence never clamp."""
    count = draw(st.integers(min_value=0, max_value=8))
    spans = []
    t = draw(st.integers(min_value=1000, max_value=3000))
    for _ in range(count):
        length = draw(st.integers(min_value=200, max_value=4000))
        spans.append((float(t), float(t + length)))
        t += length + draw(st.integers(min_value=1700, max_value=5000))
    return spans


@settings(max_examples=150, deadline=None)
@given(utterances(), st.integers(0, 500), st.integers(0, 900), st.integers(-60, 60), st.integers(-60, 120))
def test_service_spans_of_the_truth_score_perfectly_after_mapping(
    truth: list[tuple[float, float]], padding: int, silence: int, start_shift: int, end_shift: int
) -> None:
    """What the service would report for the truth (padding before, silence window after), shifted
    by a detection bias, maps back onto the truth with exactly that bias."""
    raw = [(a - padding + start_shift, b + silence + end_shift) for a, b in truth]
    turns = BoundaryMapping(padding, silence).map_turns(raw)
    s = score_turns(truth, turns)
    assert s.matched == len(truth) and s.f1 == 1.0
    assert s.clamped_starts == 0
    if truth:
        assert s.start_error_ms_median == pytest.approx(start_shift)
        assert s.end_error_ms_median == pytest.approx(end_shift)
    assert (s.false_starts, s.cut_offs, s.merged, s.missed) == (0, 0, 0, 0)


@settings(max_examples=150, deadline=None)
@given(
    utterances(),
    st.lists(st.tuples(st.integers(0, 60_000), st.integers(1, 5000)), max_size=10),
)
def test_scores_stay_within_bounds(truth: list[tuple[float, float]], raw: list[tuple[int, int]]) -> None:
    spans = normalize_spans([(a, a + n) for a, n in raw]) if raw else []
    turns = [turn(a, b) for a, b in spans]
    s = score_turns(truth, turns)
    assert 0.0 <= s.precision <= 1.0 and 0.0 <= s.recall <= 1.0 and 0.0 <= s.f1 <= 1.0
    assert s.matched <= min(len(truth), len(turns))
    assert s.false_starts + s.matched <= len(turns)
    assert s.missed + s.matched <= len(truth)
    assert s.merged <= max(0, len(truth) - 1)
    assert s.false_alarm_ms >= 0 and s.missed_speech_ms >= 0
    assert s.missed_speech_ms <= sum(b - a for a, b in truth) + 1e-6
